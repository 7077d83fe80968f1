"""ppt_ms's benchmark variants and the PyTorch peer, timed in interleaved rounds.

Run one after the other, tools/benchmark.py and the peer script drift apart by 20 % and
more on a shared machine.  Here every network stays loaded in a process of its own and
they take turns: in each round every worker runs forwards for --seconds, and ratios are
taken within the round.  Prints each worker's median images/s and the median [q1, q3] over
rounds of its ratio to the peer (and to `none`).  Random weights (speed does not depend on
them); the peer runs in its own venv (torch is not a dependency of ppt_ms):

    python scripts/peer_side_by_side.py --config configs/ppt/ppt_deit_small.yaml \\
        --peer_python peer-venv/bin/python --peer_script PATH/torch_vit_bench.py \\
        --compare none ppt-fused --batch_size 1 --rounds 40
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))


def serve(forward, batch_size: int):
    """The worker side: say ready, then for each line of stdin (seconds) run forwards for that
    long and print the images/s."""
    print("ready", flush=True)
    for line in sys.stdin:
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < float(line) or calls == 0:
            forward()
            calls += 1
        print(batch_size * calls / (time.perf_counter() - start), flush=True)


def ours(config: str, variant: str, batch_size: int):
    from functools import partial
    from ppt_ms.benchmark.timing import forward
    from ppt_ms.benchmark.variants import variant_configs
    from ppt_ms.builder import build_model, setup_context
    from ppt_ms.config import load_config
    from ppt_ms.data import sample_images
    cfg = variant_configs(load_config(config), [variant])[variant]
    setup_context(cfg["system"])
    _, net = build_model(cfg, purpose="inference")
    images = sample_images(batch_size, cfg["model"]["img_size"], cfg["system"]["seed"])
    serve(partial(forward, net, images), batch_size)


def peer(script: str, model: str, batch_size: int, threads: int):
    import importlib.util
    import torch
    spec = importlib.util.spec_from_file_location("torch_vit_bench", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = module.ViT(*module.SIZES[model]).eval()
    images = torch.randn(batch_size, 3, 224, 224)
    with torch.inference_mode():
        serve(lambda: net(images), batch_size)


def side_by_side(commands: dict, rounds: int, seconds: float) -> dict:
    """{name: command line of a worker} -> {name: [images/s per round]}, the workers taking turns."""
    workers = {}
    try:
        for name, command in commands.items():
            workers[name] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for line in workers[name].stdout:
                if line.strip() == "ready":
                    break
            else:
                raise RuntimeError("worker %s exited before it was ready: %s" % (name, " ".join(command)))
        rates = {name: [] for name in workers}
        for _ in range(rounds):
            for name, worker in workers.items():
                worker.stdin.write("%g\n" % seconds)
                worker.stdin.flush()
                rates[name].append(float(worker.stdout.readline()))
        return rates
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()


def quartiles(values):
    q1, median, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return median, q1, q3


def summary(rates: dict, baselines=("peer", "none")) -> list:
    """Lines: each worker's median images/s, and the median [q1, q3] over rounds of its ratio to
    each baseline before it in `baselines` (the peer, then none), taken within each round."""
    lines = []
    for name, values in rates.items():
        line = "%-12s %7.2f images/s" % (name, statistics.median(values))
        earlier = baselines[:baselines.index(name)] if name in baselines else baselines
        for base in earlier:
            if base in rates:
                line += "   vs %s %.3fx [%.3f, %.3f]" % ((base,) + quartiles(
                    [ours / theirs for ours, theirs in zip(values, rates[base])]))
        lines.append(line)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--compare", nargs="+", default=["none"], help="tools/benchmark.py's variant names")
    parser.add_argument("--peer_python", help="python of the venv with torch; without it, no peer")
    parser.add_argument("--peer_script", help="the peer's torch_vit_bench.py")
    parser.add_argument("--peer_model", default="deit_small")
    parser.add_argument("--threads", type=int, default=2, help="the peer's torch threads")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=1.0, help="per worker per round")
    parser.add_argument("--worker", choices=["ours", "peer"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "ours":
        return ours(args.config, args.compare[0], args.batch_size)
    if args.worker == "peer":
        return peer(args.peer_script, args.peer_model, args.batch_size, args.threads)
    from ppt_ms.benchmark.run import cpu_model  # the peer's venv has no MindSpore
    common = ["--config", args.config, "--batch_size", str(args.batch_size)]
    commands = {}
    if args.peer_python:
        commands["peer"] = [args.peer_python, HERE, "--worker", "peer", "--peer_script", args.peer_script,
                            "--peer_model", args.peer_model, "--threads", str(args.threads)] + common
    for variant in args.compare:
        commands[variant] = [sys.executable, HERE, "--worker", "ours", "--compare", variant] + common
    rates = side_by_side(commands, args.rounds, args.seconds)
    print("%s, %d cores; batch %d, %d rounds of %g s per worker" % (cpu_model(), os.cpu_count(), args.batch_size,
                                                                     args.rounds, args.seconds))
    print("\n".join(summary(rates)))


if __name__ == "__main__":
    main()
