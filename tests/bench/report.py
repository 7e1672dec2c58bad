"""The pipeline benchmark's report: targets (issue 14's), the text table, the README's markdown table."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from memory import MEMORY_METHOD
from workloads import MiB

MEMORY_PIPELINES = ("default", "images", "seed")

# Targets (issue 14): segwatch / seed time, medians of in-round ratios.
TARGET_DEFAULT_VS_SEED = {"W1": 0.35, "W2": 0.20, "W3": 0.25, "W4": 0.20}
TARGET_IMAGES_VS_SEED = {"W1": 0.15, "W2": 0.08, "W3": 0.08, "W4": 0.08}
TARGET_METRICS_NS_PER_PIXEL = 2.5  # W2
TARGET_NOISE_VS_PREVIOUS = 1.0  # the kernel on per-pixel noise, against the previous one
TARGET_EXTRA_PRIVATE = 32 * MiB  # W2, default config
TARGET_ONCE_VS_SEED = 0.8  # whole process, 50 W1 epochs
TARGET_ARGMAX_VS_READ = 2.0


@dataclass
class Target:
    workload: str
    what: str
    value: float
    limit: float
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "passed": self.passed}


def targets_for(name: str, result: dict[str, Any]) -> list[Target]:
    found = []
    ratios = result["ratios"]
    for top, limits in (("default", TARGET_DEFAULT_VS_SEED), ("images", TARGET_IMAGES_VS_SEED)):
        if name in limits:
            ratio = ratios[f"{top}/seed"]
            cpu = ratio["cpu"]["median"]
            found.append(
                Target(
                    name,
                    f"{'default config' if top == 'default' else 'images only'} segwatch/seed time",
                    ratio["wall"]["median"],
                    limits[name],
                    note=f"cpu time ratio {cpu:.3g}",
                )
            )
    pipes = result["pipelines"]
    # The seed logs images only: the images-only output is the one to compare bytes with.
    found.append(
        Target(
            name,
            "images-only event bytes/artifact vs the seed's",
            pipes["images"]["event_bytes_per_artifact"],
            pipes["seed"]["event_bytes_per_artifact"],
            " B",
        )
    )
    metrics = result["metrics"]
    if name == "W2":
        found.append(
            Target(
                name,
                "confusion kernel (cpu)",
                metrics["ns_per_pixel"]["kernel"],
                TARGET_METRICS_NS_PER_PIXEL,
                " ns/pixel",
                note=f"reading gt and pred once {metrics['ns_per_pixel']['read_once']:.2f} ns/pixel",
            )
        )
    found.append(
        Target(
            name,
            "kernel/previous kernel on per-pixel noise (cpu)",
            metrics["noise_kernel_vs_previous"]["median"],
            TARGET_NOISE_VS_PREVIOUS,
        )
    )
    if "argmax" in result:
        found.append(
            Target(
                name,
                "argmax / np.load of the logits",
                result["argmax"]["argmax_vs_np_load"]["median"],
                TARGET_ARGMAX_VS_READ,
            )
        )
    if name == "W2" and "memory" in result:
        extra = result["memory"]["default"]["extra_private_bytes"]
        found.append(
            Target(
                name, "default config extra private memory", extra / MiB, TARGET_EXTRA_PRIVATE / MiB, " MiB"
            )
        )
    return found


def once_target(once: dict[str, Any]) -> Target:
    return Target(
        "W1",
        f"`segwatch once` over {once['epochs']} epochs / the seed's process, wall",
        once["wall"]["median"],
        TARGET_ONCE_VS_SEED,
        note=f"cpu time ratio {once['cpu']['median']:.3g}",
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def machine(meta: dict[str, Any]) -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
            )
    except OSError:
        pass
    import tensorflow as tf

    return (
        f"{os.cpu_count()} CPUs ({model or 'unknown model'}), Python {sys.version.split()[0]}, numpy "
        f"{np.__version__}, TensorFlow {tf.__version__}; load average {meta['load_before']:.1f} before, "
        f"{meta['load_after']:.1f} after"
    )


def print_report(
    results: dict[str, Any], once: dict[str, Any] | None, targets: list[Target], meta: dict[str, Any]
) -> None:
    out = sys.stdout
    out.write(
        f"segwatch pipeline benchmark{' (--quick: a smoke run, figures mean nothing)' if meta['quick'] else ''}, "
        f"{meta['rounds']} timed rounds per workload. Times are per artifact, .npy on disk (page cache warm) -> "
        "summaries flushed in the event file; pipelines alternate within each round; ratios are medians of "
        "per-round ratios. cpu = this process's CPU time (all threads, user + system), less disturbed by other "
        "load on the machine than wall time.\n"
        f"machine: {meta['machine']}\n"
    )
    for name, result in results.items():
        height, width = result["output_size"]
        memory = result.get("memory", {})
        out.write(f"\n{name}: {result['description']}\n")
        out.write(
            f"  input {result['input_bytes'] / MiB:.1f} MiB of .npy; default config output {height}x{width} px\n"
        )
        out.write(
            f"  {'pipeline':<13} {'n/round':>7} {'median ms':>10} {'min-max ms':>17} {'cpu ms':>8} "
            f"{'event B/artifact':>16} {'extra private MiB':>17}\n"
        )
        for pipe, figures in result["pipelines"].items():
            seconds = figures["seconds"]
            span = f"{_ms(seconds['min'])}-{_ms(seconds['max'])}"
            extra = f"{memory[pipe]['extra_private_bytes'] / MiB:.1f}" if pipe in memory else "-"
            out.write(
                f"  {pipe:<13} {result['artifacts_per_round'][pipe]:>7} {_ms(seconds['median']):>10} {span:>17} "
                f"{_ms(figures['cpu_seconds']['median']):>8} {figures['event_bytes_per_artifact']:>16,.0f} "
                f"{extra:>17}\n"
            )
        for key, ratio in result["ratios"].items():
            wall, cpu = ratio["wall"], ratio["cpu"]
            out.write(
                f"  {key:<22} {wall['median']:.3f}  (per-round {wall['min']:.3f}-{wall['max']:.3f}; "
                f"cpu {cpu['median']:.3f})\n"
            )
        metrics = result["metrics"]
        ns, noise = metrics["ns_per_pixel"], metrics["noise_ns_per_pixel"]
        out.write(
            f"  confusion kernel over {metrics['pixels'] / 1e6:.1f} M pixels (cpu): {ns['kernel']:.2f} ns/pixel; "
            f"reading gt and pred once {ns['read_once']:.2f}; previous kernel {ns['previous']:.2f}. "
            f"Per-pixel noise: {noise['kernel']:.2f} vs previous {noise['previous']:.2f} ns/pixel\n"
        )
        if "argmax" in result:
            arg = result["argmax"]
            out.write(
                f"  argmax of the logits (read by offset, normalise) {_ms(arg['seconds']['argmax']['median'])} ms, "
                f"np.load of them {_ms(arg['seconds']['np_load']['median'])} ms: "
                f"{arg['argmax_vs_np_load']['median']:.2f}\n"
            )
        if memory:
            seg = memory["default"]
            out.write(
                f"  memory: {seg['artifacts']} artifacts per child; default config extra anonymous peak "
                f"{seg['extra_anon_peak_bytes'] / MiB:.1f} MiB ({seg['anon_samples']} samples), tracemalloc peak "
                f"{seg['extra_traced_peak_bytes'] / MiB:.1f} MiB; peak RSS {seg['peak_rss_bytes'] / MiB:.0f} MiB\n"
            )
    if once:
        secs, cpu = once["seconds"], once["cpu_seconds"]
        out.write(
            f"\nwhole process, {once['epochs']} W1 epochs, {once['rounds']} alternating rounds: `segwatch once` "
            f"(default config) {secs['segwatch']['median']:.2f} s (cpu {cpu['segwatch']['median']:.2f} s), the "
            f"seed's process {secs['seed']['median']:.2f} s (cpu {cpu['seed']['median']:.2f} s): "
            f"{once['wall']['median']:.3f} (per-round {once['wall']['min']:.3f}-{once['wall']['max']:.3f}; "
            f"cpu {once['cpu']['median']:.3f})\n"
        )
    if any("memory" in r for r in results.values()):
        out.write(f"\nmemory: {MEMORY_METHOD}\n")
    out.write("\ntargets\n")
    for target in targets:
        if target.unit == " B":
            value, limit = f"{target.value:,.0f} B", f"{target.limit:,.0f} B (the seed's)"
        else:
            value, limit = f"{target.value:,.3g}{target.unit}", f"{target.limit:,.3g}{target.unit}"
        note = f"; {target.note}" if target.note else ""
        verdict = "PASS" if target.passed else "MISS"
        out.write(f"  {verdict}  {target.workload} {target.what}: {value} (target <= {limit}{note})\n")


def print_markdown(results: dict[str, Any], once: dict[str, Any] | None, meta: dict[str, Any]) -> None:
    """The README's Performance table, default config first."""
    out = sys.stdout
    out.write(f"Measured on {meta['machine']}.\n\n")
    out.write(
        "| workload | default config / seed | images only / seed | default / floor | images / floor "
        "| default | images | seed | metrics ns/pixel | extra private MiB default / images / seed "
        "| event KB default / images / seed |\n"
    )
    out.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
    for name, result in results.items():
        ratios, pipes = result["ratios"], result["pipelines"]
        memory = result.get("memory", {})
        mem = " / ".join(
            f"{memory[p]['extra_private_bytes'] / MiB:.1f}" if p in memory else "-" for p in MEMORY_PIPELINES
        )
        kb = " / ".join(
            f"{pipes[p]['event_bytes_per_artifact'] / 1000:.0f}" for p in ("default", "images", "seed")
        )
        out.write(
            f"| {name} {result['description'].split(' ->')[0]} | **{ratios['default/seed']['wall']['median']:.3f}** "
            f"| {ratios['images/seed']['wall']['median']:.3f} "
            f"| {ratios['default/floor-default']['wall']['median']:.2f} "
            f"| {ratios['images/floor-images']['wall']['median']:.2f} "
            f"| {_ms(pipes['default']['seconds']['median'])} ms | {_ms(pipes['images']['seconds']['median'])} ms "
            f"| {_ms(pipes['seed']['seconds']['median'])} ms | {result['metrics']['ns_per_pixel']['kernel']:.2f} "
            f"| {mem} | {kb} |\n"
        )
    if once:
        out.write(
            f"\nWhole process, `segwatch once` over {once['epochs']} W1 epochs against the seed's process: "
            f"**{once['wall']['median']:.3f}** ({once['seconds']['segwatch']['median']:.2f} s vs "
            f"{once['seconds']['seed']['median']:.2f} s; cpu ratio {once['cpu']['median']:.3f}).\n"
        )
