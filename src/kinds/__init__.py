"""The task kinds, one folder each, each one TaskKind (src.core.task_kind) registered here: a new kind is a folder
and a line. Kinds are asked to read a target column in this order, the catch-all (one label) last."""
from src.core.task_kind import register
from src.kinds.identity.kind import IdentityKind
from src.kinds.label.kind import LabelKind
from src.kinds.number.kind import NumberKind
from src.kinds.segmentation.kind import SegmentationKind
from src.kinds.tags.kind import TagsKind

register(LabelKind())     # reads last: whatever no other kind claims
register(SegmentationKind())  # first: the classes its masks hold could read as tags or numbers
register(TagsKind())
register(IdentityKind())
register(NumberKind())
