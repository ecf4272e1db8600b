"""Data-parallel steps on torch.distributed: the samples split across ranks, the gradient
all-reduced, from two CPU processes on gloo to many GPUs and nodes on NCCL.

``step``: the data-parallel step around a kernel. ``worker``: one rank of a run, started by
``torchrun`` or by ``gdbench run --nproc`` through the same elastic agent. ``launch``: the
agent's side of ``--nproc``, over one or several world sizes.
"""
