"""Object-aware detection: regions around motion, the COCO detector, tracks, zones."""
