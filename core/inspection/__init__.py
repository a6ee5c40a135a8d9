"""Pictures of what a model sees, for `cnn inspect`: labelled matplotlib figures and one page.

- :mod:`.canvas`: figures on an Agg canvas (no pyplot), PNG bytes, the texts a figure shows,
  the input image as something to show.
- :mod:`.kernels`: every conv layer's kernels per filter and input channel, one diverging scale
  centred on zero per layer; a first layer on RGB also as colour images.
- :mod:`.maps`: one image's feature maps of a layer, one colour scale per layer.
- :mod:`.fields`: for the most active unit of each channel, the input box it sees
  (:func:`core.explain.unit_box`) drawn on the image.
- :mod:`.patches`: the test-split crops that most activate each filter, streamed in batches.
- :mod:`.saliency`: the saliency map of the predicted class over the image.
- :mod:`.page`: one self-contained HTML page (images inlined as ``data:`` URIs).
- :mod:`.report`: all of the above for one model and one image, written to a directory.

matplotlib is imported inside the drawing functions (``core`` must stay cheap to import for the
server); everything draws on ``Figure`` objects, which keep no global state.
"""
