"""GPT-2 generate (batch 1, greedy, N new tokens): latency, size, memory and CPU use, and
agreement with the baseline (fp32 on the CPU, bf16 on a GPU).

asv runs every (metric x size x prompt x new tokens x threads x variant) in its own process,
which is what isolates each variant's memory. Variants that cannot run here are skipped in
`setup` with the reason; an ONNX export or a quantization that fails is that variant's
recorded failure, and the others still run.
"""

from kernelwatch import measure
from kernelwatch.workloads.gpt2 import case as gpt2

from .common import _FirstRun, _Workload, device


class _Gpt2(_Workload, workload=gpt2):
    # Its `threads` parameter sets torch's threads. The process's budget (`timeout`) covers
    # loading, quantizing or exporting, compiling, and the generations: GPT-2 XL in fp32 on
    # one core is about 50 s per 100 tokens.
    pin_threads = False


class Gpt2Generate(_Gpt2):
    """Seconds: time to first token, the total for N new tokens, and each decode step
    (every token after the first, over all repeats). Tokens/s is derived in the report."""

    # 2: the warm-up generates all N tokens (Gpt2Case.warm_up), so the first timed
    # generation no longer pays a recompile or the first step at each cache length
    version = "2"
    unit = "seconds"

    def setup(self, *params):
        self._build(*params)
        self.case.warm_up()

    def track_ttft(self, *params):
        runs = self.case.timed_generations()
        return measure.Samples([r.ttft for r in runs], 1).for_asv()

    def track_total_time(self, *params):
        runs = self.case.timed_generations()
        return measure.Samples([r.total for r in runs], 1).for_asv()

    def track_decode_time(self, *params):
        runs = self.case.timed_generations()
        return measure.Samples([t for r in runs for t in r.decode_intervals], 1).for_asv()


class Gpt2FirstRun(_FirstRun, _Gpt2):
    """Seconds of the first generation in a fresh process with fresh inductor caches
    (common._FirstRun): for `compile`, the compile plus one generation (the report turns it
    into a break-even in tokens); for the others their one-time costs."""

    version = "1"


class Gpt2Size(_Gpt2):
    """The saved model on disk, and how many modules the variant quantized."""

    version = "1"
    unit = "bytes"

    def setup(self, *params):
        self._build(*params)

    def track_size_on_disk(self, *params):
        return self.case.size_on_disk()

    def track_quantized_modules(self, *params):
        return self.case.generator.quantized_modules

    track_quantized_modules.unit = "count"


class Gpt2Memory(_Gpt2):
    """RSS and CPU use of the process while it generates, sampled every 0.1 s (psutil). CPU
    is in percent of one core: 100 is one busy core."""

    # 2: sampled after a warm-up of all N tokens (Gpt2Case.warm_up): a compiled variant's
    # recompile no longer falls inside the sampled generation
    version = "2"
    unit = "bytes"

    def setup(self, *params):
        self._build(*params)
        self.case.warm_up()
        measure.release_freed_memory()

    def _usage(self):
        return measure.sample_process(self.case.run)

    def track_peak_rss(self, *params):
        return self._usage().peak_rss

    def track_p90_rss(self, *params):
        return self._usage().p90_rss

    def track_peak_cpu(self, *params):
        return self._usage().peak_cpu

    track_peak_cpu.unit = "percent"

    def track_p90_cpu(self, *params):
        return self._usage().p90_cpu

    track_p90_cpu.unit = "percent"


class Gpt2Accuracy(_Gpt2):
    """Agreement with the baseline on the same weights and prompt: the fraction of greedy
    tokens equal, and the largest and mean absolute logit difference over the prompt."""

    version = "1"
    unit = "fraction"

    def setup(self, size, prompt_tokens, new_tokens, threads, variant):
        ref = gpt2.reference(size, prompt_tokens, new_tokens, device())
        self._build(size, prompt_tokens, new_tokens, threads, variant)
        self.agreement = self.case.agreement(ref)

    def track_token_match(self, *params):
        return self.agreement.token_match

    def track_max_logit_diff(self, *params):
        return self.agreement.max_logit_diff

    track_max_logit_diff.unit = "logit"

    def track_mean_logit_diff(self, *params):
        return self.agreement.mean_logit_diff

    track_mean_logit_diff.unit = "logit"
