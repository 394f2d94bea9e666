import Foundation

/// The files OpenIPMI's ipmi_sim needs to act as a lab PC's BMC on loopback: lan.conf (one
/// LAN channel on `port`, user `lab` with `password`, chassis power starting and stopping
/// `startCommand`) and sim.emu (one management controller), written into `work`.
///
/// The `serial … codec VM` line is what makes ipmi_sim's power control work at all (without
/// it, `chassis power on` fails with "Invalid data field in request"); no guest connects to it.
/// `solDevice`: the serial device the BMC's Serial-over-LAN carries (the PC's serial port).
public enum IPMISimulatorFiles {
    public static func write(into work: TemporaryDirectory, name: String, port: Int, startCommand: String,
                             password: String, powerOffSeconds: Int, solDevice: String? = nil) {
        work.write("lan.conf", text: """
            name "\(name)"
            set_working_mc 0x20
              startlan 1
                addr 127.0.0.1 \(port)
                priv_limit admin
                allowed_auths_callback none md2 md5 straight
                allowed_auths_user none md2 md5 straight
                allowed_auths_operator none md2 md5 straight
                allowed_auths_admin none md2 md5 straight
                guid a123456789abcdefa123456789abcdef
              endlan
              serial 15 127.0.0.1 \(port + 1) codec VM
            \(solDevice.map { "  sol \"\($0)\" 115200" } ?? "")
              startcmd "\(startCommand)"
              startnow false
              poweroff_wait \(powerOffSeconds)
              kill_wait \(powerOffSeconds)
              user 2 true "lab" "\(password)" admin 10 none md2 md5 straight
            """)
        work.write("sim.emu", text: "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n")
    }
}
