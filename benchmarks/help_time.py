"""Wall time of each command's `--help` (a fresh process each, best of `--repeats`):
`--help` imports no TensorFlow, so it should answer in well under 2 s.

    python -m benchmarks.help_time --repeats=3
"""

import os
import subprocess
import sys
import time

from absl import app, flags

COMMANDS = ("train", "export", "generate", "evaluate", "benchmark", "import_torch")
flags.DEFINE_integer("repeats", 3, "Runs per command; the best is printed.", lower_bound=1)


def main(argv):
    del argv
    for command in COMMANDS:
        times = []
        for _ in range(flags.FLAGS.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", f"sagan_tf.{command}", "--help"], check=True,
                           capture_output=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            times.append(time.perf_counter() - start)
        print(f"sagan_tf.{command} --help: {min(times):.2f} s (best of {len(times)})", flush=True)


if __name__ == "__main__":
    app.run(main)
