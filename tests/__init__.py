"""The template's own suite: bakes every supported combination and proves each one."""
