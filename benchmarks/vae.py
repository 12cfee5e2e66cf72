"""ViT VAE encoder and decoder (ViTok-v2 style): time per batch, first run, compile cost and
health, memory, and reconstruction quality against eager.

Every (metric x config x part x batch x variant) runs in its own asv process, so a compile
that overruns `timeout`, or a batch that runs out of memory, fails that one parameter only.
Variants that cannot run here (FP8 without an FP8 GPU, CUDA graphs on a CPU) are skipped in
`setup` with the reason.
"""

from kernelwatch import measure
from kernelwatch.workloads.vae import case as vae

from .common import (
    _CallTime,
    _CompileCost,
    _DeviceCheck,
    _FirstRun,
    _PeakCudaMemory,
    _PeakMemory,
    _Workload,
)


class _Vae(_Workload, workload=vae):
    pass


class VaeTime(_CallTime, _Vae):
    """Seconds per batch, device time and caller time (common._CallTime). Device time
    replays CUDA graphs except for compile-reduce-overhead, which replays its own graphs,
    and torchao's eager quantized variants: those are the profiler's kernel time of plain
    calls (vae.device_time_method). ms/image and images/s are derived in the report."""

    version = "2"  # 2: the uncapturable variants' device time is the profiler's kernel time


class VaeDeviceCheck(_DeviceCheck, _Vae):
    """Device time against caller time and the GPU's conditions in one process
    (common._DeviceCheck)."""

    version = "1"


class VaeFirstRun(_FirstRun, _Vae):
    """Seconds of the variant's one-time work plus its first call, in a fresh process with
    fresh compile caches: quantizing, compiling, and the first batch. The report turns it
    (minus eager's first call) into break-even samples."""

    version = "1"
    first_run_options = {"apply": False}


class VaeCompile(_CompileCost, _Vae):
    """Compile cost (cold: fresh inductor cache; warm: FX graph cache filled by a child
    process) and compile health (graph breaks, graphs, recompiles) over two calls."""

    version = "1"

    def _health(self):
        forward = type(self.case.module).forward.__code__
        return measure.compile_health(forward, [self.case.run, self.case.run])


class VaeMemory(_PeakMemory, _Vae):
    """Peak process RSS during one batch, model and inputs included."""

    version = "1"


class VaeCudaMemory(_PeakCudaMemory, _Vae):
    """Peak CUDA allocated and reserved bytes, and the process's RSS, during one batch,
    model and inputs included."""

    version = "1"


class VaeQuality(_Vae):
    """The variant's reconstruction against eager's on fresh photographs (not the timed
    ones): SSIM (1 = identical) and PSNR in dB."""

    version = "1"
    unit = "ratio"

    def setup(self, config, part, batch, variant):
        self._build(config, part, batch, variant, image_offset=vae.FRESH_IMAGE_OFFSET,
                    apply=False)
        reference = self.case.eager_reconstruction(self.case.inputs)
        self.case.apply_variant()
        self.quality = vae.quality(self.case.reconstruction(self.case.run()), reference)

    def track_ssim(self, *params):
        return self.quality.ssim

    def track_psnr(self, *params):
        return self.quality.psnr

    track_psnr.unit = "dB"
