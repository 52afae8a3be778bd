from tagbase.cli import main

main()
