from httptask.cli import main

main()
