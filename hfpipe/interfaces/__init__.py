"""hfpipe inside other tools' interfaces: :mod:`hfpipe.interfaces.spey`, a spey backend
(``spey.get_backend("hfpipe.full_statistical_model")``) whose fits are hfpipe's."""
