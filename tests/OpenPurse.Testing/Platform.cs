// The real components are Debian programs: these fixtures run on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
