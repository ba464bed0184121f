"""BIOES label spaces: model label order, span classes and index maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from pii_frames.model.config import DEFAULT_SPAN_CLASS_NAMES

__all__ = ["BACKGROUND", "BOUNDARY_TAGS", "DEFAULT_LABEL_NAMES", "DEFAULT_SPAN_LABELS", "LabelSpace"]

BACKGROUND = "O"
BOUNDARY_TAGS = ("B", "I", "E", "S")

# openai/privacy-filter "v2" label space: O, then B/I/E/S for each class in this order.
DEFAULT_SPAN_LABELS = DEFAULT_SPAN_CLASS_NAMES
DEFAULT_LABEL_NAMES = (BACKGROUND,) + tuple(f"{tag}-{name}" for name in DEFAULT_SPAN_LABELS for tag in BOUNDARY_TAGS)

# Integer codes of the boundary tag of every label (see LabelSpace.tags).
TAG_O, TAG_B, TAG_I, TAG_E, TAG_S = 0, 1, 2, 3, 4
_TAG_CODES = {"B": TAG_B, "I": TAG_I, "E": TAG_E, "S": TAG_S}


@dataclass(frozen=True, eq=False)
class LabelSpace:
    """Token labels of a model (``"O"`` and ``"B-x"/"I-x"/"E-x"/"S-x"`` for each class ``x``).

    ``names`` keeps the model's output order; ``span_labels`` lists the span
    classes in order of first appearance. ``tags[i]`` is the boundary tag code
    of label ``i`` (0 for O, then B, I, E, S as 1..4) and ``classes[i]`` its span
    class index (-1 for O). ``index[(tag, class_name)]`` gives the label index.

    Example:
        >>> space = LabelSpace.from_names(["O", "B-name", "I-name", "E-name", "S-name"])
        >>> space.span_labels, space.index[("E", "name")], space.background
        (('name',), 3, 0)
        >>> LabelSpace.default().names[17]
        'B-private_person'
    """

    names: tuple[str, ...]
    span_labels: tuple[str, ...]
    background: int
    tags: np.ndarray = field(repr=False)
    classes: np.ndarray = field(repr=False)
    index: dict[tuple[str, str], int] = field(repr=False)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> LabelSpace:
        """Build a label space from label names in model output order.

        Raises ValueError when "O" is missing or repeated, a name is not
        ``<B|I|E|S>-<class>``, a name repeats, or a class lacks one of B, I, E, S.
        """
        names = tuple(names)
        if any(not isinstance(name, str) for name in names):
            raise ValueError(f"label names must be strings, got {names!r}")
        if names.count(BACKGROUND) != 1:
            raise ValueError(f"a label space needs exactly one {BACKGROUND!r} label; got {list(names)}")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate label names: {duplicates}")

        span_labels: list[str] = []
        tags = np.zeros(len(names), dtype=np.int8)
        classes = np.full(len(names), -1, dtype=np.int32)
        index: dict[tuple[str, str], int] = {}
        for position, name in enumerate(names):
            if name == BACKGROUND:
                continue
            tag, sep, span_label = name.partition("-")
            if not sep or tag not in _TAG_CODES or not span_label:
                raise ValueError(
                    f"label {name!r} (index {position}) is not of the form B-<class>, I-<class>, "
                    "E-<class> or S-<class>"
                )
            if span_label not in span_labels:
                span_labels.append(span_label)
            tags[position] = _TAG_CODES[tag]
            classes[position] = span_labels.index(span_label)
            index[(tag, span_label)] = position
        for span_label in span_labels:
            missing = [tag for tag in BOUNDARY_TAGS if (tag, span_label) not in index]
            if missing:
                raise ValueError(f"span class {span_label!r} lacks the {'/'.join(missing)} label(s)")
        tags.setflags(write=False)
        classes.setflags(write=False)
        return cls(names, tuple(span_labels), names.index(BACKGROUND), tags, classes, index)

    @classmethod
    def default(cls) -> LabelSpace:
        """The 33-label space of openai/privacy-filter."""
        return _DEFAULT

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSpace) and other.names == self.names

    def __hash__(self) -> int:
        return hash(self.names)


_DEFAULT = LabelSpace.from_names(DEFAULT_LABEL_NAMES)
