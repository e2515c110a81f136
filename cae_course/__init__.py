__version__ = "0.1.0"

_PRETRAINED = ("pretrained", "pretrained_names", "pretrained_info", "list_pretrained")


def __getattr__(name):
    "`cae_course.pretrained(...)` and friends, imported on first use so that `import cae_course.data` stays light."
    if name in _PRETRAINED:
        from . import shipped

        return getattr(shipped, name)
    raise AttributeError(f"module 'cae_course' has no attribute {name!r}")
