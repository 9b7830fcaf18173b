"""DMD distillation (flow-matching form, `dmd.py`) and the diffusion discriminator
(`discriminator.py`), generic over networks; the training task is `train/student.py`."""
