import BackupArchive
import Foundation

func members(_ reader: TarReader) throws -> [(entry: TarEntry, data: [UInt8])] { try reader.readAll(dataLimit: 64 << 20) }

func members(of url: URL) throws -> [(entry: TarEntry, data: [UInt8])] { try members(TarReader(url: url)) }
