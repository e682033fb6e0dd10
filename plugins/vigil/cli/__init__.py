"""The ``vigil`` command line, the face on top of the core: :mod:`vigil.cli.main` (the app, ``db``
and ``models``) and one module per command group. Heavy imports live inside the commands, so
``vigil --help`` is instant. ``vigil site build`` reaches ``site_builder`` from its own function
(:mod:`vigil.cli.site_commands`): the one place the core looks up at the site."""
