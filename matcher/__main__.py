from matcher.cli.entry import main

main()
