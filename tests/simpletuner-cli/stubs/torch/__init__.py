"""Stands in for torch, which SimpleTuner's CLI imports only to ask whether it runs distributed
(helpers/log_format.py); the training stack is not installed for the CLI tests."""


class _Distributed:
    @staticmethod
    def is_available():
        return False

    @staticmethod
    def is_initialized():
        return False

    @staticmethod
    def get_rank():
        return 0


distributed = _Distributed()
__version__ = "0.0.0+stub"
