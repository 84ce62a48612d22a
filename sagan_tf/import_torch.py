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
sigma of heykeetae's next forward call is printed.

torch is needed by this command only (`pip install "sagan-tf[torch]"`).
"""

from sagan_tf import cli
from sagan_tf.heykeetae import IMAGE_SIZE, PRESET, load, write_workdir


# ---------------------------------------------------------------------- CLI
def define_flags(flag_values):
    from sagan_tf import config

    define = cli.flag_definer(flag_values)
    define("string", "generator", None, "heykeetae generator file ({step}_G.pth).")
    define("string", "discriminator", None, "heykeetae discriminator file ({step}_D.pth); "
           "needed for --workdir.")
    define("integer", "imsize", IMAGE_SIZE, "Image size of the PyTorch model (64).")
    define("integer", "z_dim", None, "Latent size, checked against the file (default: read "
           "from it).")
    define("integer", "power_iterations", 1000, "Most power iterations run from the stored u "
           "to its fixed point.", lower_bound=1)
    define("string", "workdir", None, "Write a training workdir (checkpoint + config.json).")
    define("string", "dataset", "celeb_a", "Dataset recorded for --workdir.")
    define("string", "export_name", None, "Export a SavedModel as --export_dir/NAME/VERSION.")
    config.define_flags(flag_values, only=("export_dir",))


def main(argv):
    from absl import flags

    from sagan_tf import serving

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    if not FLAGS.generator:
        cli.fail("--generator=PATH (heykeetae's {step}_G.pth) is required")
    if not (FLAGS.workdir or FLAGS.export_name):
        cli.fail("nothing to write: give --workdir and/or --export_name")
    if FLAGS.workdir and not FLAGS.discriminator:
        cli.fail("--workdir needs --discriminator (training resumes G and D)")
    if FLAGS.export_name:
        serving.check_name(FLAGS.export_name)
    generator, discriminator, info = load(FLAGS.generator, FLAGS.discriminator,
                                          FLAGS.z_dim, FLAGS.imsize, FLAGS.power_iterations)
    print(f"read {FLAGS.generator}{' and ' + FLAGS.discriminator if discriminator else ''}:"
          f" z_dim {info['z_dim']}, conv_dim {info['conv_dim']}; sigma at its fixed point "
          f"differs from heykeetae's next forward by at most {info['sigma_change']:.2e} "
          "(relative)" + (": its u had not settled (an untrained or briefly trained model), "
                          "so its images depend on how often it was called"
                          if info["sigma_change"] > 1e-2 else ""), flush=True)
    if FLAGS.workdir:
        path = write_workdir(FLAGS.workdir, generator, discriminator, info, FLAGS.dataset)
        print(f"wrote {path} (resume: python -m sagan_tf.train --preset={PRESET} "
              f"--workdir={FLAGS.workdir} --dataset={FLAGS.dataset} ...)", flush=True)
    if FLAGS.export_name:
        path = serving.export_generator(generator, FLAGS.export_dir, FLAGS.export_name,
                                       source={"heykeetae": info})
        print(f"exported {path}", flush=True)


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
