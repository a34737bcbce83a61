"""The reference ledger's tooling. The service itself is playbooks/roles/ledger/files/hivestack_ledger.py (it runs on
the hosts with Debian's python3 and python3-pymysql); `hivestack.ledger.load` is its load client (standard library
only, also copied to the hosts and run there as `python3 load.py`)."""
