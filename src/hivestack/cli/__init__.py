"""The `hivestack` command line: thin verbs over the library."""
