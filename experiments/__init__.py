"""Entry points: main (train/eval), benchmark."""
