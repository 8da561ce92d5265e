"""The model graph: a pure data model (`model`), the op registry (`ops`), torch-free shape
inference (`shapes`), and the torch side (`build`, `layers`, `export`), imported on demand."""

from engine.graph.model import Edge, Graph, Node
from engine.graph.ops import OPS, OpDef
from engine.graph.shapes import Analysis, TensorType, analyze, validate

__all__ = ["OPS", "Analysis", "Edge", "Graph", "Node", "OpDef", "TensorType", "analyze", "validate"]
