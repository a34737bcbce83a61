"""The embedded lab: several data centers on one machine (namespaces, nspawn hosts, faults).

Middle floor: depends on `topology` only.
"""
