"""``python -m esrgan.train`` (what torchrun launches): the esrgan-train command."""

from esrgan.train.cli import main

if __name__ == "__main__":
    main()
