"""``python -m colorkit`` (also how ``torchrun ... -m colorkit train`` starts)."""

from colorkit.cli import main

if __name__ == "__main__":
    main()
