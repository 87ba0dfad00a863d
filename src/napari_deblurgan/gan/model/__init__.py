"""The networks: the DeblurGAN ResNet generator and the architecture config (``generator``), the
NAFNet-style encoder-decoder (``nafnet``), building either and its fast inference form (``networks``),
the PatchGAN critic (``critic``), narrowing a wide generator (``narrow``), safetensors weight files and
the model cache (``weights``), and the device policy (``device``). Imports only :mod:`..io`."""
