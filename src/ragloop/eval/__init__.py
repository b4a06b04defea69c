"""Evaluation: BEIR datasets, IR metrics, model- and service-mode evaluators, reports with plots.

Imports only ``ragloop.core``. The promotion gate calls ``model_mode.evaluate_model``; the CLI
(``ragloop eval``) drives the evaluators in ``evaluators`` and writes reports with ``report``;
``ragloop eval --answers`` scores generated answers through ``answer_mode.evaluate_answers``.
"""
