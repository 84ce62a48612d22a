"""sagan-import-torch (python -m sagan_tf.import_torch): heykeetae/Self-Attention-GAN
checkpoints into sagan_tf.

Reads the `{step}_G.pth` / `{step}_D.pth` files that heykeetae's PyTorch SAGAN
trainer writes (`torch.save(model.state_dict())`, with or without the
`module.` prefix of `--parallel`), builds the `heykeetae_64` preset, copies
every tensor across (NCHW kernels to Keras layouts) and then exports a
SavedModel (`--export_name`) and/or writes a workdir checkpoint that
`python -m sagan_tf.train --preset=heykeetae_64 --workdir=...` resumes from
(`--workdir`, needs the discriminator too).

  python -m sagan_tf.import_torch --generator=100000_G.pth --discriminator=100000_D.pth \\
      --workdir=runs/celeb_hk --export_name=celeb_hk

Power iteration: heykeetae's `SpectralNorm` advances `u` on every forward call
(eval mode too), so its images depend on how often it was called; a trained
model's `u` sits at the fixed point. The import runs the power iteration from
the stored `u` to that fixed point (`--power_iterations` at most), so sigma is
the kernel's largest singular value; the largest relative change from the
sigma of heykeetae's next forward call is printed. The latent size is read from
the file (`--z_dim`, when given, is checked against it).

torch is needed by this command only (`pip install "sagan-tf[torch]"`).
"""

import dataclasses
from typing import Optional

from sagan_tf import cli, config
from sagan_tf.config import ConfigError, Section, option
from sagan_tf.heykeetae import IMAGE_SIZE, PRESET, load, write_workdir


@dataclasses.dataclass
class ImportOptions(Section):
    """sagan-import-torch's own options: the PyTorch files and what to write."""

    generator: Optional[str] = option(None, "heykeetae generator file ({step}_G.pth).")
    discriminator: Optional[str] = option(None, "heykeetae discriminator file ({step}_D.pth); "
                                          "needed for --workdir.")
    imsize: int = option(IMAGE_SIZE, "Image size of the PyTorch model (64).")
    power_iterations: int = option(1000, "Most power iterations run from the stored u to its "
                                   "fixed point.", minimum=1)
    workdir: Optional[str] = option(None, "Write a training workdir (checkpoint + config.json).")
    export_name: Optional[str] = option(None, "Export a SavedModel as --export_dir/NAME/VERSION "
                                        "(default: no export).")

    def validate(self):
        super().validate()
        if not self.generator:
            raise ConfigError("--generator=PATH (heykeetae's {step}_G.pth) is required")
        if not (self.workdir or self.export_name):
            raise ConfigError("nothing to write: give --workdir and/or --export_name")
        if self.workdir and not self.discriminator:
            raise ConfigError("--workdir needs --discriminator (training resumes G and D)")
        if self.export_name:  # the name rule of the export section
            config.ExportConfig(export_name=self.export_name).validate()


# sagan-train's options it takes: the latent size (default: read from the file and
# checked when given), the dataset recorded for --workdir, the export directory.
SHARED = {config.ModelConfig: ("z_dim",), config.DataConfig: ("dataset",),
          config.ExportConfig: ("export_dir",)}
DEFAULTS = dict(z_dim=None, dataset="celeb_a")


def define_flags(flag_values):
    config.define_command_flags(flag_values, ImportOptions, SHARED, DEFAULTS)


def main(argv):
    from absl import flags

    from sagan_tf import serving

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    own = config.read_section(ImportOptions, FLAGS)
    model, data_config, export = (config.read_section(section, FLAGS, only=names)
                                  for section, names in SHARED.items())
    z_dim = model.z_dim if FLAGS.z_dim is not None else None  # not given: the file's
    generator, discriminator, info = load(own.generator, own.discriminator, z_dim,
                                          own.imsize, own.power_iterations)
    print(f"read {own.generator}{' and ' + own.discriminator if discriminator else ''}:"
          f" z_dim {info['z_dim']}, conv_dim {info['conv_dim']}; sigma at its fixed point "
          f"differs from heykeetae's next forward by at most {info['sigma_change']:.2e} "
          "(relative)" + (": its u had not settled (an untrained or briefly trained model), "
                          "so its images depend on how often it was called"
                          if info["sigma_change"] > 1e-2 else ""), flush=True)
    if own.workdir:
        path = write_workdir(own.workdir, generator, discriminator, info, data_config.dataset)
        print(f"wrote {path} (resume: python -m sagan_tf.train --preset={PRESET} "
              f"--workdir={own.workdir} --dataset={data_config.dataset} ...)", flush=True)
    if own.export_name:
        path = serving.export_generator(generator, export.export_dir, own.export_name,
                                       source={"heykeetae": info})
        print(f"exported {path}", flush=True)


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
