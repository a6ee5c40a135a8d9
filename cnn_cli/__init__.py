"""The `cnn` command line: one tool for serving, training, inspecting and classifying."""
