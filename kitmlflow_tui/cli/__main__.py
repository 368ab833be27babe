from kitmlflow_tui.cli import main

main()
