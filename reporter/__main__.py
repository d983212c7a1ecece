from .cli import main

# Named as installed, so that usage lines and click's completion variable (_REPORTER_COMPLETE)
# are the same as for the `reporter` script.
main(prog_name="reporter")
