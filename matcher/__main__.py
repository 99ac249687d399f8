from matcher.cli.app import main

main()
