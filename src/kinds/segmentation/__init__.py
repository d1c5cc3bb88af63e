"""Segmentation's home: a mask per image, run-length encoded in the submission, scored by Dice."""
