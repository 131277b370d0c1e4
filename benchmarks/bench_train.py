"""Training speed of the assignment's presets and the colour preset: ganforge's step, a
baseline, the limit.

Run with ``make bench`` (never part of ``make test``). In one process, alternating the
contenders round by round so that machine noise hits them alike, it measures training
iterations per second for each preset and each contender, at batch 128 for the assignment's
presets (on MNIST) and at its own batch, 64, for ``colour`` (on random 3×32×32 images: a step's
speed does not depend on what the images show):

* the baseline, against which "× baseline" is counted: for the assignment's presets
  ``assignment``, the seed's ``run_a_gan`` loop, written out below as the seed writes it
  (torchvision MNIST with ``ToTensor`` through a ``DataLoader`` with a sequential sampler,
  ``.type(dtype)`` casts, separate D passes on real and fake, G re-run for its step), on
  ganforge's networks and losses; for ``colour`` (resnet networks) ``radford``, the same
  preset on the DCGAN networks of Radford et al. (what the resnet networks cost more);
* ``ganforge``: ``iterate_training`` as ``ganforge train`` runs it, with the presets' defaults;
* ``ganforge-compile`` and ``ganforge-bf16``: the same with ``--compile`` / ``--precision bf16``
  (``ganforge-fp16`` too on CUDA);
* ``limit``: the iteration rate if nothing but the step's matmuls and convolutions ran, each at
  the speed torch reaches for its exact shapes on this machine. The ops are recorded from one
  ganforge fp32 step (forward and backward, as executed: the work the algorithm needs) and
  replayed alone, in the same rounds as the contenders. FLOPs per iteration are counted from the
  same ops' shapes by ``torch.utils.flop_counter`` (2·M·N·K per matmul, the conv equivalents,
  backward included).

"% of limit" is a contender's it/s over the limit's; "× baseline" its ratio to the baseline;
"useful GFLOP/s" the lean step's FLOPs times the contender's it/s (the assignment's loop
does more arithmetic than that: D's weight gradients in the G step). The limit counts fp32 eager
matmuls and convolutions only: a bf16 or compiled contender may pass 100%.

Peak memory is measured in a fresh process per contender (peak resident memory of the
whole process on the CPU, torch included; peak allocated tensor memory on CUDA). Results go
to a JSON file and a printed table.

``--profile PRESET`` prints instead torch.profiler's table of where ganforge's step spends
its time, op by op and shape by shape.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.data import DataLoader, sampler
from torch.utils.flop_counter import FlopCounterMode

from ganforge.config import TrainConfig, build_config
from ganforge.data import ensure_mnist, load_dataset, resolve_data_root
from ganforge.nets import build_models, sample_noise
from ganforge.objectives import OBJECTIVES
from ganforge.training import (
    build_step,
    build_trained_models,
    iterate_training,
    make_optimizer,
    resolve_device,
)
from ganforge.training.performance import cpu_has_native_bf16, peak_memory_mb

PRESETS = ("gan", "lsgan", "dcgan", "colour")
BATCH = 128
NOISE = 96
#: The presets measured on colour images, and their baseline contender (the others': assignment).
COLOUR_BASELINES = {"colour": "radford"}
COLOUR_SHAPE = (3, 32, 32)


def baseline(preset: str) -> str:
    return COLOUR_BASELINES.get(preset, "assignment")


def batch_size(preset: str) -> int:
    """The assignment's presets at its batch, 128; a colour preset at its own."""
    return build_config(preset).batch_size if preset in COLOUR_BASELINES else BATCH


def preset_config(preset: str, **overrides) -> TrainConfig:
    """The preset at :func:`batch_size`, colour ones drawing :data:`COLOUR_SHAPE`."""
    if preset in COLOUR_BASELINES:
        overrides = {"channels": COLOUR_SHAPE[0], "image_size": COLOUR_SHAPE[1], **overrides}
    # The plain contender computes in fp32 (the default, auto, is bf16 on CPUs that have it):
    # bf16 is its own contender.
    defaults = {"batch_size": batch_size(preset), "precision": "fp32"}
    return build_config(preset, overrides={**defaults, **overrides})


def training_images(preset: str, device: torch.device, data_root: Path) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)``: MNIST's 60,000, or 4,096 random colour ones."""
    if preset in COLOUR_BASELINES:
        rng = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (4096, *COLOUR_SHAPE), dtype=torch.uint8, generator=rng)
    return load_dataset("mnist", "train", data_root=data_root).images.to(device)


# ---------------------------------------------------------------------------------------------
# The assignment's loop, as the seed writes it


class ChunkSampler(sampler.Sampler):
    """Samples elements sequentially from some offset (the seed's sampler)."""

    def __init__(self, num_samples: int, start: int = 0) -> None:
        self.num_samples, self.start = num_samples, start

    def __iter__(self):
        return iter(range(self.start, self.start + self.num_samples))

    def __len__(self) -> int:
        return self.num_samples


def assignment_iterations(preset: str, device: torch.device, data_root: Path) -> Iterator[None]:
    """The seed's ``run_a_gan`` body, one yield per iteration, looping over epochs forever."""
    import torchvision.datasets as dset
    import torchvision.transforms as T

    config = build_config(preset)
    dtype = torch.cuda.FloatTensor if device.type == "cuda" else torch.FloatTensor
    mnist_train = dset.MNIST(str(data_root), train=True, download=False, transform=T.ToTensor())
    loader_train = DataLoader(mnist_train, batch_size=BATCH, sampler=ChunkSampler(50000, 0))
    G, D = build_models(config.architecture, NOISE, config.init)
    G, D = G.type(dtype), D.type(dtype)
    G_solver, D_solver = make_optimizer(G), make_optimizer(D)
    objective = OBJECTIVES[config.loss]
    discriminator_loss, generator_loss = objective.discriminator_loss, objective.generator_loss
    while True:
        for x, _ in loader_train:
            if len(x) != BATCH:
                continue
            D_solver.zero_grad()
            real_data = x.type(dtype)
            logits_real = D(2 * (real_data - 0.5)).type(dtype)
            g_fake_seed = sample_noise(BATCH, NOISE).type(dtype)
            fake_images = G(g_fake_seed).detach()
            logits_fake = D(fake_images.view(BATCH, 1, 28, 28))
            d_total_error = discriminator_loss(logits_real, logits_fake)
            d_total_error.backward()
            D_solver.step()
            G_solver.zero_grad()
            g_fake_seed = sample_noise(BATCH, NOISE).type(dtype)
            fake_images = G(g_fake_seed)
            gen_logits_fake = D(fake_images.view(BATCH, 1, 28, 28))
            g_error = generator_loss(gen_logits_fake)
            g_error.backward()
            G_solver.step()
            yield


# ---------------------------------------------------------------------------------------------
# ganforge's step


def ganforge_iterations(
    preset: str, device: torch.device, data_root: Path, **overrides
) -> Iterator[None]:
    config = preset_config(preset, **overrides)
    images = training_images(preset, device, data_root).to(device)
    torch.manual_seed(0)
    step = build_step(build_trained_models(config, device))
    # epochs 0: no epoch limit; the caller stops iterating.
    for _ in iterate_training(
        step, images, batch_size=config.batch_size, epochs=0, data_generator=torch.Generator()
    ):
        yield


# ---------------------------------------------------------------------------------------------
# The limit: the step's matmuls and convolutions alone

COMPUTE_OPS = {
    torch.ops.aten.mm,
    torch.ops.aten.addmm,
    torch.ops.aten.bmm,
    torch.ops.aten.convolution,
    torch.ops.aten.convolution_backward,
}


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def make(self) -> torch.Tensor:
        tensor = torch.empty_strided(self.shape, self.stride, dtype=self.dtype, device=self.device)
        return tensor.uniform_(-1, 1)


class RecordComputeOps(TorchDispatchMode):
    """Records each matmul/convolution call (op, argument shapes and strides) as it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket in COMPUTE_OPS:

            def spec(value):
                if isinstance(value, torch.Tensor):
                    return TensorSpec(tuple(value.shape), value.stride(), value.dtype, value.device)
                return value

            self.calls.append((func, tree_map(spec, args), tree_map(spec, kwargs)))
        return func(*args, **kwargs)


def one_ganforge_step(preset: str, device: torch.device, mode) -> None:
    """Run one fp32 ganforge step (after a warm-up step) under a dispatch or counting mode."""
    config = preset_config(preset)
    step = build_step(build_trained_models(config, device))
    batch, shape = config.batch_size, COLOUR_SHAPE if preset in COLOUR_BASELINES else (1, 28, 28)
    # n_critic batches per iteration, two iterations
    count = batch * config.n_critic * 2
    images = torch.randint(0, 256, (count, *shape), dtype=torch.uint8, device=device)
    steps = iterate_training(step, images, batch_size=batch, epochs=2)
    next(steps)
    with mode:
        next(steps)


def limit_iterations(preset: str, device: torch.device) -> tuple[Iterator[None], float]:
    """Replay the recorded compute ops of one step, one yield per step's worth; and the FLOPs."""
    recorder = RecordComputeOps()
    one_ganforge_step(preset, device, recorder)
    counter = FlopCounterMode(display=False)
    one_ganforge_step(preset, device, counter)
    materialise = lambda value: value.make() if isinstance(value, TensorSpec) else value  # noqa: E731
    calls = [(f, tree_map(materialise, a), tree_map(materialise, k)) for f, a, k in recorder.calls]

    def iterations():
        while True:
            with torch.no_grad():  # closed before each yield: grad mode must not leak out
                for func, args, kwargs in calls:
                    func(*args, **kwargs)
            yield

    return iterations(), float(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------
# Timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(iterations: Iterator[None], device: torch.device, window: float, minimum: int) -> float:
    """Iterations per second over at least ``window`` seconds and ``minimum`` iterations."""
    synchronize(device)
    start, count = time.perf_counter(), 0
    while True:
        next(iterations)
        count += 1
        if count >= minimum:
            synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= window:
                return count / elapsed


def contenders(preset: str, device: torch.device, data_root: Path) -> dict[str, Callable]:
    """Name → factory of its iteration stream."""
    if preset in COLOUR_BASELINES:
        base = lambda: ganforge_iterations(preset, device, data_root, architecture="radford")  # noqa: E731
    else:
        base = lambda: assignment_iterations(preset, device, data_root)  # noqa: E731
    options = {
        baseline(preset): base,
        "ganforge": lambda: ganforge_iterations(preset, device, data_root),
        "ganforge-compile": lambda: ganforge_iterations(preset, device, data_root, compile=True),
        "ganforge-bf16": lambda: ganforge_iterations(preset, device, data_root, precision="bf16"),
    }
    if device.type == "cuda":
        options["ganforge-fp16"] = lambda: ganforge_iterations(
            preset, device, data_root, precision="fp16"
        )
    return options


def peak_memory_of_process(
    preset: str, contender: str, device: torch.device, data_root: Path
) -> float:
    """Peak memory of a fresh process running 5 iterations of one contender."""
    command = [sys.executable, __file__, "--peak-memory", preset, contender]
    command += ["--device", str(device), "--data-root", str(data_root)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def measure_peak_memory(preset: str, contender: str, device: torch.device, data_root: Path):
    if contender == "limit":
        iterations, _ = limit_iterations(preset, device)
    else:
        iterations = contenders(preset, device, data_root)[contender]()
    for _ in range(5):
        next(iterations)
    synchronize(device)
    return peak_memory_mb(device)


def benchmark(preset: str, device: torch.device, data_root: Path, rounds: int, window: float):
    print(f"== {preset}: warming up", file=sys.stderr, flush=True)
    streams = {name: make() for name, make in contenders(preset, device, data_root).items()}
    streams["limit"], flops = limit_iterations(preset, device)
    for iterations in streams.values():
        for _ in range(3):  # compilation, allocator and oneDNN kernel caches
            next(iterations)
    speeds: dict[str, list[float]] = {name: [] for name in streams}
    order = list(streams)
    shuffler = random.Random(0)
    for round_index in range(rounds):
        shuffler.shuffle(order)  # no contender always follows the same one
        for name in order:
            speeds[name].append(rate(streams[name], device, window, minimum=3))
        print(f"   round {round_index + 1}/{rounds}", file=sys.stderr, flush=True)
    median = {name: statistics.median(values) for name, values in speeds.items()}
    rows = []
    for name, values in speeds.items():
        rows.append(
            {
                "preset": preset,
                "contender": name,
                "it_per_s": median[name],
                "it_per_s_min": min(values),
                "it_per_s_max": max(values),
                "baseline": baseline(preset),
                "x_baseline": median[name] / median[baseline(preset)],
                "pct_of_limit": 100 * median[name] / median["limit"],
                "useful_gflop_per_s": flops * median[name] / 1e9,
                "peak_memory_mb": None,
            }
        )
    return {
        "preset": preset,
        "batch_size": batch_size(preset),
        "gflop_per_iteration": flops / 1e9,
        "rows": rows,
    }


def add_peak_memory(results: list[dict], device: torch.device, data_root: Path) -> None:
    for result in results:
        for row in result["rows"]:
            try:
                row["peak_memory_mb"] = peak_memory_of_process(
                    row["preset"], row["contender"], device, data_root
                )
            except subprocess.CalledProcessError as exc:
                print(f"peak memory of {row['contender']} failed: {exc}", file=sys.stderr)


def format_table(results: list[dict]) -> str:
    lines = [
        "| preset | contender | it/s (median, min–max) | × baseline | % of limit "
        "| useful GFLOP/s | peak memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result["rows"]:
            memory = "–" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:.0f} MB"
            lines.append(
                f"| {row['preset']} ({result['gflop_per_iteration']:.2f} GFLOP/it) "
                f"| {row['contender']} "
                f"| {row['it_per_s']:.2f} ({row['it_per_s_min']:.2f}–{row['it_per_s_max']:.2f}) "
                f"| {row['x_baseline']:.2f} | {row['pct_of_limit']:.0f}% "
                f"| {row['useful_gflop_per_s']:.0f} | {memory} |"
            )
    return "\n".join(lines)


def machine_description(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "platform": platform.platform(),
    }
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    info["cpus"] = len(__import__("os").sched_getaffinity(0))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def profile(preset: str, device: torch.device, data_root: Path, steps: int = 10) -> str:
    """torch.profiler's table of where ganforge's step spends its time, by op and shape."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as run_profiler

    iterations = ganforge_iterations(preset, device, data_root)
    for _ in range(3):
        next(iterations)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with run_profiler(activities=activities, record_shapes=True) as profiler:
        for _ in range(steps):
            next(iterations)
        synchronize(device)
    table = profiler.key_averages(group_by_input_shape=True)
    return table.table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--peak-memory", nargs=2, metavar=("PRESET", "CONTENDER"))
    parser.add_argument("--profile", choices=PRESETS, help="print where one preset's step goes")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data_root = resolve_data_root(args.data_root)
    ensure_mnist(data_root)
    if args.peak_memory:
        print(measure_peak_memory(*args.peak_memory, device, data_root))
        return
    if args.profile:
        print(profile(args.profile, device, data_root))
        return
    results = [benchmark(p, device, data_root, args.rounds, args.window) for p in args.presets]
    report = {"machine": machine_description(device), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")  # the timings, before anything fails
    add_peak_memory(results, device, data_root)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["machine"]))
    print(format_table(results))
    print(f"(written to {args.out})")


if __name__ == "__main__":
    main()
