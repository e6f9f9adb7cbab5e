"""Case studies that use the library as a user would: ``two_layer_hardness``."""
