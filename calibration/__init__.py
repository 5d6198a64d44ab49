"""int8 quantization inputs and checks: representative-set selection, PTQ options, accuracy drop; QAT in .qat."""

from .config import QuantConfig
from .drop import accuracy_drop
from .select import Coverage, calibration_images, select_representative

__all__ = ["Coverage", "QuantConfig", "accuracy_drop", "calibration_images", "select_representative"]
