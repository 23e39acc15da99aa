"""The Chase authors' command lines as a source of settings: their scripts' flags as data
(``flags``) and the translation of a command line into a partial run configuration
(``mapping``). ``docs/reference-flags.md`` gives every flag's mapping with its reason."""

from chase.train.reference.flags import CIFAR, IMAGENET, SCRIPTS, Flag, Script, detect, option_of
from chase.train.reference.mapping import Translation, translate

__all__ = [
    "CIFAR",
    "IMAGENET",
    "SCRIPTS",
    "Flag",
    "Script",
    "Translation",
    "detect",
    "option_of",
    "translate",
]
