"""The paper's application: MNIST, the network, the trainer, the experiments, the plots, the
benchmarks and the ``adadelta`` command.

It uses the library core (:mod:`adadelta`) and never the reverse; it needs the ``paper`` extra
(``pip install "adadelta[paper]"``).
"""
