"""The runner: papermill execution (:mod:`~.execute`), the Jupyter Book build (:mod:`~.book`), notebook
parameters and their rules (:mod:`~.params`, :mod:`~.param_rules`), the generated replica profile
(:mod:`~.replica_profile`) and the command line (:mod:`~.cli`).

Notebooks never import it, so a notebook's run key leaves this folder out: editing the runner reruns nothing.
"""
