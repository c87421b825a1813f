#!/usr/bin/env python3
"""Writes fee-trace.csv: one simulated day of fees on four rails, a row every 12 seconds.

How it is made (deterministic: seed 402), in the shapes the real chains show, not their
figures of any one day:

- Ethereum's base fee: a mean-reverting random walk in log space around 8 gwei, with a daily
  swell (x1.8 at 15:00 UTC, x0.6 at 03:00) and, about six times a day, a congestion spike
  (x2.5 to x6, decaying over ~20 minutes). EIP-1559 moves it at most 12.5% a block, so each
  12-second step is clamped to that.
- The blob base fee: 1 wei most of the day (blob space is cheap), with two or three blob
  congestion episodes where it climbs (x1.125 a block) to 10^8..10^10 wei and falls back.
- L2 base fees: Base around 0.006 gwei, OP Mainnet around 0.001 gwei, each with short
  congestion bursts (x5 to x40 for a few minutes) a dozen times a day; Arbitrum at its
  0.01 gwei floor, with rare bursts.
- Arbitrum's L1 price estimate (ArbOS's price of one L1 gas unit of posted data): since
  Arbitrum posts its batches in blobs and compresses them, it runs far below Ethereum's base
  fee; here 0.4% of the smoothed base fee (ArbOS adjusts it slowly), plus a share of the blob
  base fee.

Columns: t (seconds since midnight), eth_base_fee, blob_base_fee, base_l2_base_fee,
op_l2_base_fee, arb_l2_base_fee, arb_l1_estimate (all wei).

Run: python3 make_fee_trace.py > fee-trace.csv
"""

import math
import random
import sys

random.seed(402)
STEP = 12
ROWS = 86_400 // STEP
GWEI = 1_000_000_000


def spikes(count, lo, hi, decay_rows):
    """Multipliers per row: `count` spikes at random rows, decaying exponentially."""
    factors = [1.0] * ROWS
    for _ in range(count):
        at = random.randrange(ROWS)
        peak = random.uniform(lo, hi)
        for i in range(at, min(ROWS, at + decay_rows * 6)):
            factors[i] *= 1 + (peak - 1) * math.exp(-(i - at) / decay_rows)
    return factors


def walk(mean, sigma, revert):
    level = math.log(mean)
    out = []
    for _ in range(ROWS):
        level += revert * (math.log(mean) - level) + random.gauss(0, sigma)
        out.append(math.exp(level))
    return out


def clamp_1559(series):
    out = [series[0]]
    for value in series[1:]:
        prev = out[-1]
        out.append(min(max(value, prev * 0.875), prev * 1.125))
    return out


def daily(i):
    hour = i * STEP / 3600
    return 1.2 + 0.6 * math.sin((hour - 9) / 24 * 2 * math.pi)


eth_spikes = spikes(6, 2.5, 6.0, 100)
eth = clamp_1559([w * daily(i) * eth_spikes[i] for i, w in enumerate(walk(8 * GWEI, 0.03, 0.01))])

blob = [1.0] * ROWS
for _ in range(3):
    at = random.randrange(ROWS - 600)
    top = 10 ** random.uniform(8, 10)
    level = 1.0
    climbing = True
    for i in range(at, ROWS):
        if climbing:
            level = min(level * 1.125, top)
            climbing = level < top
        else:
            level = max(level * 0.9, 1.0)
            if level == 1.0:
                break
        blob[i] = max(blob[i], level)

base_bursts = spikes(12, 5, 40, 15)
op_bursts = spikes(12, 5, 40, 15)
arb_bursts = spikes(3, 2, 10, 10)
base_l2 = clamp_1559([w * base_bursts[i] for i, w in enumerate(walk(0.006 * GWEI, 0.05, 0.02))])
op_l2 = clamp_1559([w * op_bursts[i] for i, w in enumerate(walk(0.001 * GWEI, 0.05, 0.02))])
arb_l2 = [max(0.01 * GWEI, 0.01 * GWEI * arb_bursts[i]) for i in range(ROWS)]
arb_l1 = []
smoothed = eth[0]
for i, value in enumerate(eth):
    smoothed += (value - smoothed) * 0.02
    arb_l1.append(smoothed * 0.004 + blob[i] * 0.5)

out = sys.stdout
out.write("t,eth_base_fee,blob_base_fee,base_l2_base_fee,op_l2_base_fee,arb_l2_base_fee,arb_l1_estimate\n")
for i in range(ROWS):
    row = [i * STEP, eth[i], blob[i], base_l2[i], op_l2[i], arb_l2[i], arb_l1[i]]
    out.write(",".join(str(int(round(v))) for v in row) + "\n")
