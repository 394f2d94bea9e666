import DropsCLI

CommandMain.run(DropsBuild.self)
