"""aelab: autoencoders and deep generative models of images on PyTorch + Lightning.

    import aelab
    aelab.list_models()                    # registered names
    model = aelab.create_model("conv-resize")
    model = aelab.load("runs/demo")        # a trained run: model.encode(x), model.decode(z)
"""

__version__ = "0.1.0"

from .errors import AelabError  # noqa: E402
from .registry import create_model, list_models  # noqa: E402
from .runs import load  # noqa: E402

__all__ = ["AelabError", "create_model", "list_models", "load", "__version__"]
