"""The Ansible layer: inventory derived from the topology and a stack's outputs (playbook resources later).

Middle floor: depends on `topology` only.
"""
