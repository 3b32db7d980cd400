"""MI-GAN (Picsart AI Research, ICCV 2023): our port of the inference generator and its Inpainter."""
