"""`python -m crisis_keras.weights convert --arch ARCH --input CKPT --output OUT.weights.h5`.

Writes the Keras weights of the no-top backbone (`--image-weights OUT.weights.h5`).
Exit code 2 with `crisis_keras.weights: error: ...` when the checkpoint cannot
be read or does not fit the architecture (the message names the tensor).
"""

import argparse
import sys

PROG = "crisis_keras.weights"


def _parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="checkpoint (.pth/.safetensors/.npz) -> Keras .weights.h5")
    conv.add_argument("--arch", required=True, choices=("efficientnet_lite0", "densenet121"))
    conv.add_argument("--input", required=True, help="torch .pth (zip or legacy), .safetensors or .npz")
    conv.add_argument("--output", required=True, help="Keras weights file, must end in .weights.h5")
    return parser


def main(argv=None):
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    parser = _parser()
    args = parse_args(parser, argv)
    from crisis_keras.weights.convert import convert

    try:
        out = convert(args.arch, args.input, args.output)
    except (ValueError, OSError) as err:
        parser.exit(2, f"{PROG}: error: {err}\n")
    print(f"wrote {out} ({args.arch}, no top)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
