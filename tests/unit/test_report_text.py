"""`kernelwatch report` as a newcomer reads it on a CPU: environments named by what differs,
no column without a value, nothing wider than a 120-column terminal."""

from kernelwatch import workloads
from kernelwatch.report import site
from kernelwatch.results.rows import Row

ENV = "virtualenv-py3.11-numpy-onnx1.23.2-onnxruntime1.32.0-onnxscript0.7.2-psutil-" \
      "scikit-image0.26.0-setuptools-torch{torch}-torchao0.18.0-transformers5.17.0"


def rope(torch: str, variant: str, seconds: float) -> Row:
    return Row(machine="ci", commit="a" * 40, date=1, env_name=ENV.format(torch=torch),
               env={"torch": torch, "gpu": "none", "num_cpu": "2"},
               benchmark="rope.RopeTime.track_time",
               params={"shape": "tiny", "form": "rotate-half", "dtype": "float32",
                       "variant": variant},
               unit="seconds", value=seconds, samples=[seconds * (1 + i / 1000) for i in range(9)])


def test_the_cpu_report_names_environments_by_what_differs_and_fits_120_columns():
    rows = [rope(t, v, s) for t in ("2.13.0", "2.14.1")
            for v, s in (("eager", 50e-6), ("compile", 40e-6))]
    text = site.text_table(rows, workloads.bytes_for_benchmark)
    print(text)
    headings = [line for line in text.splitlines() if line.startswith("== ")]
    assert [h.split("  ")[0] for h in headings] == ["== ci · torch 2.13.0",
                                                    "== ci · torch 2.14.1"]
    assert "virtualenv-py3.11" not in text
    assert "caller" not in text and "host/call" not in text and "n/a" not in text
    assert max(map(len, text.splitlines())) <= 120


def test_the_markdown_report_is_the_same_tables_for_docs():
    """`kernelwatch report --markdown`: each environment a heading, each table a markdown
    table with the same cells as the text (docs/ tables regenerated from results)."""
    rows = [rope("2.13.0", v, s) for v, s in (("eager", 50e-6), ("compile", 40e-6))]
    # the host's dispatch per tiny op beside the heading: what a caller time carries
    host = rope("2.13.0", "eager", 2.6e-6)
    host.benchmark, host.params = "environment.Environment.track_dispatch_seconds", {}
    text = site.text_table(rows + [host], workloads.bytes_for_benchmark)
    md = site.text_table(rows + [host], workloads.bytes_for_benchmark, markdown=True)
    print(md)
    assert md.splitlines()[0].startswith("### ci · torch 2.13.0")
    assert md.splitlines()[0].endswith("  dispatch 2.61 us")
    header = next(line for line in md.splitlines() if line.startswith("| shape"))
    assert [c.strip() for c in header.strip("|").split("|")][-3:] == ["time", "vs eager", "GB/s"]
    compile_md = next(line for line in md.splitlines() if line.startswith("| tiny")
                      and "| compile |" in line)
    compile_text = next(line for line in text.splitlines() if " compile " in line)
    cells = [c.strip() for c in compile_md.strip("|").split("|")]
    assert " ".join(cells).split() == compile_text.split()


def test_compare_says_a_reason_once_when_base_and_head_were_skipped_alike():
    from kernelwatch.report import compare

    why = "te-fused needs transformer_engine, which does not import here"
    rows = [Row(machine=m, commit="a" * 40, date=1, env_name="env", env={},
                benchmark="rope.RopeTime.track_time", params={"variant": "te-fused"},
                unit="seconds", skipped=True, reason=reason)
            for m, reason in (("spawn", why), ("forkserver", why))]
    (c,) = compare.compare(rows, ("spawn", "a" * 40), ("forkserver", "a" * 40))
    assert c.conditions == f"base and head: {why}"
    rows[1].reason = "another reason"
    (c,) = compare.compare(rows, ("spawn", "a" * 40), ("forkserver", "a" * 40))
    assert c.conditions == f"base: {why}; head: another reason"


def gptq_row(benchmark: str, variant: str, seconds: float, gpu: str = "none") -> Row:
    return Row(machine="ci", commit="a" * 40, date=1, env_name=ENV.format(torch="2.13.0"),
               env={"torch": "2.13.0", "gpu": gpu, "num_cpu": "2"},
               benchmark=f"gptq.{benchmark}",
               params={"shape": "tinyllama-1.1b/q_proj", "scheme": "w4-sym-g128",
                       "blocksize": "128", "variant": variant},
               unit="seconds", value=seconds, samples=[seconds] * 10)


def test_gptq_shows_the_gpus_busy_time_beside_the_latency_only_where_it_was_measured():
    """On a GPU a GPTQ call's time is a latency the host paces; its kernel time is the
    GPU's own work. A CPU never measures the latter, so its table has no such column."""
    from kernelwatch.report import gptq as report

    [cpu] = report.tables([gptq_row("GptqTime.track_time", v, s)
                           for v, s in (("eager", 0.4), ("triton", 0.01))])
    assert "GPU busy" not in cpu.headers and all(len(r) == len(cpu.headers) for r in cpu.rows)
    h100 = "NVIDIA H100 80GB HBM3"
    [gpu] = report.tables([gptq_row("GptqTime.track_time", "eager", 0.367, h100),
                           gptq_row("GptqKernelTime.track_kernel_time", "eager", 0.052, h100),
                           gptq_row("GptqTime.track_time", "triton", 0.0094, h100)])
    busy = gpu.headers.index("GPU busy")
    assert gpu.headers[busy - 1] == "caller" and all(len(r) == len(gpu.headers) for r in gpu.rows)
    eager, triton = (next(r for r in gpu.rows if r[1] == v) for v in ("eager", "triton"))
    assert "52" in eager[busy] and "367" in eager[gpu.headers.index("warm avg")]
    assert triton[busy] == "n/a"
