"""sagan-generate (python -m sagan_tf.generate): PNG grids and latent interpolations
from an exported model.

Reads only the SavedModel (no training code, no checkpoint), so it works on any
model written by `sagan-export` or `sagan-train`:

    sagan-generate --model=savedmodels/mnist5k_32 --num=64 --out=runs/mnist5k_32/grid.png
    sagan-generate --model=savedmodels/mnist5k_32 --interpolate=10 --out=runs/mnist5k_32/lerp.png
    sagan-generate --model=savedmodels/mnist5k_32 --attention=4 --out=runs/mnist5k_32/attention.png
"""

import dataclasses
import os
from typing import Optional, Tuple

from sagan_tf import cli, config
from sagan_tf.config import ConfigError, SamplingConfig, Section, option


@dataclasses.dataclass
class GenerateOptions(Section):
    """sagan-generate's own options: what to draw and where to write it."""

    num: int = option(64, "Images in the grid.", minimum=1, maximum=1024)
    out: str = option("samples.png", "Output PNG path (.png).")
    labels: Optional[Tuple[str, ...]] = option(
        None, "Class labels for conditional models (numbers, or the class names of a model "
        "trained on a labelled folder): one row per listed class, --num // len(labels) images "
        "each (at least 1).")
    interpolate: int = option(0, "If > 0: rows of STEPS images interpolating between two "
                              "latents.", minimum=0, maximum=64)
    rows: int = option(8, "Interpolation rows.", minimum=1, maximum=64)
    attention: int = option(0, "If > 0: this many images, each with where G's attention layer "
                            "of the highest resolution looks from three query pixels.",
                            minimum=0, maximum=16)

    def validate(self):
        super().validate()
        if not self.out.lower().endswith(".png") or os.path.isdir(self.out):
            raise ConfigError(f"--out must be a .png file path; got {self.out!r}")
        out_dir = os.path.dirname(os.path.abspath(self.out))
        if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
            raise ConfigError(f"cannot write {self.out}: directory {out_dir} is missing or "
                              "not writable")


# Grids barely truncated by default (2); sagan-evaluate samples as training does (0).
DEFAULTS = {"truncation": 2.0}


def define_flags(flag_values):
    config.define_command_flags(flag_values, GenerateOptions, {SamplingConfig: None}, DEFAULTS)


def main(argv):
    from absl import flags, logging

    from sagan_tf import data, sampling, visualize

    cli.check_no_arguments(argv)
    # Every option checked before any work: a bad one never loads the model.
    sample = config.read_section(SamplingConfig, flags.FLAGS)
    own = config.read_section(GenerateOptions, flags.FLAGS)
    labels = list(own.labels) if own.labels is not None else None
    path = sampling.resolve_model_dir(sample.model, sample.version)
    loaded = sampling.load_model(path)
    names = sampling.class_names(loaded)
    if names:
        logging.info("labels: %s", data.label_table(names))
    if own.attention > 0:
        image = sampling.attention_figure(loaded, own.attention, labels, sample.seed,
                                          sample.truncation)
    elif own.interpolate > 0:
        image = sampling.interpolation(loaded, own.interpolate, own.rows, labels, sample.seed,
                                       sample.truncation)
    else:
        image = sampling.grid(loaded, own.num, sample.truncation, labels, sample.seed)
    visualize.write_png(own.out, image)
    print(own.out)


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
