"""Fuzz a live kernel for longer than the test suite does, and report.

    python bench/fuzz_kernel.py [--cases 20000] [--seed 0] [--hang-after 10]

Sends hostile messages (the strategies of tests/fuzzing.py: signed and not,
wrong field types, deep JSON, lone surrogates, garbage frames, odd
subscriptions) to the exec test kernel on all four sockets, and after each
one asks kernel_info on control. Reports cases sent, crashes (the process
ended; it is restarted), hangs (no answer within --hang-after seconds; the
kernel is restarted), the slowest answer, and the kernel's RSS at the start,
its peak and at the end. Exit code 1 if there was a crash or a hang.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fuzzing import LiveTarget, describe, message_frames, subscription_frames  # noqa: E402


class Fuzz:
    def __init__(self, hang_after: float):
        self.hang_after = hang_after
        self.tmp = tempfile.TemporaryDirectory()
        self.runs = 0
        self.target = self._start()
        self.cases = 0
        self.crashes: list = []
        self.hangs: list = []
        self.slowest = 0.0
        self.rss_start = self.rss_peak = self.target.rss_mb()

    def _start(self) -> LiveTarget:
        self.runs += 1
        path = Path(self.tmp.name) / f"run{self.runs}"
        path.mkdir()
        return LiveTarget(path)

    def one(self, channel: str, frames: list) -> None:
        self.cases += 1
        self.target.send(channel, frames)
        took = self.target.answers(self.hang_after)
        if took is None:
            kind = self.hangs if self.target.alive() else self.crashes
            kind.append((channel, describe(frames), self.target.stderr()[-2000:]))
            self.target.close()
            self.target = self._start()
            return
        self.slowest = max(self.slowest, took)
        self.target.drain()
        if self.cases % 100 == 0:
            self.rss_peak = max(self.rss_peak, self.target.rss_mb())
        if self.cases % 1000 == 0:
            print(f"  {self.cases} cases, {len(self.crashes)} crashes, {len(self.hangs)} hangs, "
                  f"RSS {self.target.rss_mb():.0f} MB", flush=True)

    def report(self, seconds: float) -> int:
        rss_end = self.target.rss_mb()
        self.rss_peak = max(self.rss_peak, rss_end)
        print(f"cases      {self.cases} in {seconds:.0f} s ({self.cases / seconds:.0f}/s), kernel runs {self.runs}")
        print(f"crashes    {len(self.crashes)}")
        print(f"hangs      {len(self.hangs)}")
        print(f"slowest    {self.slowest * 1000:.1f} ms to answer kernel_info on control")
        print(f"RSS        start {self.rss_start:.0f} MB, peak {self.rss_peak:.0f} MB, end {rss_end:.0f} MB (last kernel run)")
        for title, items in (("crash", self.crashes), ("hang", self.hangs)):
            for channel, what, stderr in items[:5]:
                print(f"--- {title} after {what} on {channel}\n{stderr}")
        self.target.close()
        self.tmp.cleanup()
        return 1 if self.crashes or self.hangs else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hang-after", type=float, default=10.0, metavar="SECONDS")
    args = p.parse_args(argv)
    fuzz = Fuzz(args.hang_after)
    signer = fuzz.target.rk.session.signer  # (every run shares the key)

    @settings(max_examples=args.cases, database=None, deadline=None, phases=["generate"],
              suppress_health_check=list(HealthCheck))
    @given(channel=st.sampled_from(["shell", "shell", "control", "stdin", "iopub"]), data=st.data())
    def run(channel, data):
        frames = data.draw(subscription_frames if channel == "iopub" else message_frames(signer))
        fuzz.one(channel, frames)

    start = time.monotonic()
    seed(args.seed)(run)()
    return fuzz.report(time.monotonic() - start)


if __name__ == "__main__":
    sys.exit(main())
