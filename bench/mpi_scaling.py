#!/usr/bin/env python3
"""The scaling model of README's "More than one machine" and BENCHMARKS.md (issue 27).

Synchronous data parallelism with a per-node batch b: each step, every node computes its b
examples (t_step(b), measured on one node by `vae bench`), then all nodes sum one flat f32
gradient buffer of B bytes. `vae` sums with a reduce-scatter (MPI_Alltoallv) and an
all-gather (MPI_Allgatherv): each node sends and receives (N-1)/N of the buffer in each,
the ring all-reduce's volume, in N-1 messages each:

    T_sum(N) = 2 (N-1)/N * B / bandwidth + 2 (N-1) * latency

plus a second, latency-only sum of the two loss totals. Nothing overlaps the sum with compute,
so the scaling efficiency (N nodes doing N times the work of one, per-node batch fixed) is

    E(N) = t_step(b) / (t_step(b) + T_sum(N))

and the per-node batch where the sum costs as much as the compute (E = 50%) is
b_50 = b * T_sum / t_step(b), taking compute as linear in the batch (an optimistic floor:
small batches run below the kernels' best rate).

Usage: python3 bench/mpi_scaling.py   (edit MEASURED for another machine's `vae bench` figures)
"""

# model: (parameters, seconds per step at batch 128 on one 2-core node), from
# `vae bench` on the AMD EPYC Zen 4 of BENCHMARKS.md, 2 threads.
MEASURED = {
    "tutorial MLP (MNIST)": (652_824, 1.19 / 468),
    "conv 32,64 (MNIST)": (258_025, 7.17 / 468),
    "colour conv 64x64 (32,64,128,256, latent 128)": (2_957_251, 9.23 / 40),
}
LINKS = {"10 Gb/s": (10e9 / 8, 25e-6), "100 Gb/s": (100e9 / 8, 5e-6)}  # bytes/s, latency per message
NODES = [2, 8, 64]
BATCH = 128


def t_sum(n, nbytes, bandwidth, latency):
    if n == 1:
        return 0.0
    gradients = 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency
    losses = 2 * (n - 1) * latency
    return gradients + losses


def main():
    print("| model | gradient MB/step | link | " + " | ".join(f"E({n}) (sum ms)" for n in NODES) + " | b_50 at 8 nodes |")
    print("|---|---|---|" + "---|" * len(NODES) + "---|")
    for name, (params, step) in MEASURED.items():
        nbytes = 4 * params
        for link, (bw, lat) in LINKS.items():
            cells = []
            for n in NODES:
                s = t_sum(n, nbytes, bw, lat)
                cells.append(f"{100 * step / (step + s):.0f}% ({1e3 * s:.2f})")
            b50 = BATCH * t_sum(8, nbytes, bw, lat) / step
            print(f"| {name} | {nbytes / 1e6:.2f} | {link} | " + " | ".join(cells) + f" | {b50:.0f} |")


if __name__ == "__main__":
    main()
