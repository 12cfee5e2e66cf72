"""How a figure's seconds were read: the names the measuring core records with its samples
and a workload declares for its cases (`Workload.device_method_for`). Plain names, so the
declarations, the report and the engine use them without importing torch."""

HOST_CLOCK = "host-clock"  # perf_counter; on a GPU synchronised before and after (caller time)
CUDA_GRAPH = "cuda-graph"  # CUDA events around a CUDA-graph replay
PROFILER_KERNELS = "profiler-kernels"  # the GPU's busy time in the calls' kernels (CUPTI)
CUDA_EVENTS = "cuda-events"  # CUDA events around plain calls (time_cuda without a graph)

# The device's own time: the GPU's work without its waits for the host.
DEVICE_METHODS = (CUDA_GRAPH, PROFILER_KERNELS)
# What a case may declare for its device time: those, or events around plain calls for a
# case whose time is meant as the GPU's latency, waits for the host included.
DECLARED_METHODS = (*DEVICE_METHODS, CUDA_EVENTS)
