"""Using trained runs: loading a run folder, generating text, filling masks, classifying
images."""
