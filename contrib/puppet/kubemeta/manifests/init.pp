# @summary Enrich container logs with kubemeta instead of mmkubernetes.
#
# Installs kubemeta, writes its configuration from the parameters, and puts
# one of kubemeta's rsyslog snippets in rsyslog's drop-in directory under an
# explicit order number. Every change that rsyslog must reload for notifies
# the rsyslog service, which the site declares (this class does not).
# `mmkubernetes => 'absent'` removes the old mmkubernetes drop-ins and module
# in the same run; `ensure => 'absent'` removes everything this class added.
#
# Every parameter is described in README.md beside this directory.
class kubemeta (
  Enum['present', 'absent'] $ensure = 'present',

  # The API server and how to reach it. A `*_file` parameter alone names a
  # file the site provides; with its content parameter the class writes it.
  String[1] $kubernetes_url = 'https://kubernetes.default.svc.cluster.local:443',
  Optional[Kubemeta::Path] $ca_file = undef,
  Optional[String[1]] $ca_cert = undef,
  Optional[Kubemeta::Path] $token_file = undef,
  Optional[Sensitive[String[1]]] $token = undef,
  Optional[Kubemeta::Path] $client_cert_file = undef,
  Optional[String[1]] $client_cert = undef,
  Optional[Kubemeta::Path] $client_key_file = undef,
  Optional[Sensitive[String[1]]] $client_key = undef,

  # The kubelet names its node after the host name, in lower case, unless
  # told otherwise (--hostname-override, cloud providers).
  String[1] $node_name = downcase($facts['networking']['hostname']),
  Array[Enum['pod_ip', 'container_image', 'container_image_id', 'owner']] $extra_fields = [],
  Hash[Pattern[/\A[a-z][a-z0-9_]*\z/],
    Variant[String, Numeric, Boolean, Array[Variant[String, Numeric, Boolean]]]] $settings = {},

  # The rsyslog side.
  Enum['cri', 'docker', 'omprog', 'table-cri', 'table-docker'] $snippet = 'cri',
  # Table mode's daemon (the table-* snippets): running and enabled with them,
  # stopped and disabled otherwise; manage_daemon => false: the site manages it.
  String[1] $daemon_service = 'kubemeta',
  Boolean $manage_daemon = true,
  Pattern[/\A[0-9]{2,3}\z/] $order = '50',
  Integer[1, 64] $workers = 2,
  Array[Enum['imfile', 'mmjsonparse', 'mmexternal', 'omprog', 'imptcp']] $skip_modules = [],
  Optional[String[1]] $rsyslog_service = 'rsyslog',
  String[1] $user = 'root',
  String[1] $group = 'root',

  Boolean $manage_package = true,
  String[1] $package_name = 'kubemeta',
  String[1] $package_ensure = 'installed',
  Optional[Kubemeta::Path] $package_source = undef,
  Kubemeta::Path $binary = '/usr/bin/kubemeta',

  Enum['absent', 'unmanaged'] $mmkubernetes = 'unmanaged',
  Array[String[1]] $mmkubernetes_dropins = [],
  String[1] $mmkubernetes_package = 'rsyslog-kubernetes',

  Kubemeta::Path $config_dir = '/etc/kubemeta',
  Kubemeta::Path $rsyslog_dir = '/etc/rsyslog.d',
) {
  $config = "${config_dir}/kubemeta.yaml"
  $dropin = "${rsyslog_dir}/${order}-kubemeta.conf"
  $reload = $rsyslog_service ? {
    undef   => [],
    default => [Service[$rsyslog_service]],
  }

  # Refuse what kubemeta would refuse, here, before any file changes.
  $contents = {
    'ca_cert' => [$ca_cert, $ca_file, 'ca_file'],
    'token' => [$token, $token_file, 'token_file'],
    'client_cert' => [$client_cert, $client_cert_file, 'client_cert_file'],
    'client_key' => [$client_key, $client_key_file, 'client_key_file'],
  }
  $contents.each |$name, $pair| {
    if $pair[0] =~ NotUndef and $pair[1] =~ Undef {
      fail("kubemeta: ${name} needs ${pair[2]}, the file to write it to")
    }
  }
  if ($client_cert_file =~ Undef) != ($client_key_file =~ Undef) {
    fail('kubemeta: client_cert_file and client_key_file must be set together')
  }
  if $token_file and $client_cert_file {
    fail('kubemeta: authenticate with token_file, or with client_cert_file and client_key_file, not both')
  }
  if $snippet == 'omprog' and $workers != 2 {
    fail("kubemeta: workers applies to the mmexternal snippets (cri, docker); the omprog snippet runs one helper")
  }
  $table = $snippet =~ /\Atable-/
  if $table and ('table_file' in $settings or 'table_reload_file' in $settings) {
    fail('kubemeta: the table snippets name /var/lib/kubemeta/lookup-table.json and lookup-table.reload; leave table_file and table_reload_file at their defaults')
  }
  $own_keys = ['kubernetes_url', 'ca_file', 'token_file', 'client_cert_file', 'client_key_file',
    'node_name', 'extra_fields', 'sink', 'token']
  $settings.each |$key, $value| {
    if $key in $own_keys {
      fail("kubemeta: set ${key} with its class parameter, not in settings")
    }
  }

  $shipped_name = "50-kubemeta-${snippet}.conf"
  $shipped = file("kubemeta/rsyslog.d/${shipped_name}")
  # The module carries the snippets because catalogs are compiled where the
  # package is not installed; each substitution checks that its line is
  # there, so a snippet that changed shape fails here instead of silently.
  $edits = [
    [/\/usr\/bin\/kubemeta /, "${binary} "],
    [/--config \/etc\/kubemeta\/kubemeta\.yaml/, "--config ${config}"],
  ] + ($snippet ? {
    'omprog' => [],
    default  => [[/queue\.workerThreads="2"/, "queue.workerThreads=\"${workers}\""]],
  }) + $skip_modules.map |$module| {
    [Regexp("^module\\(load=\"${module}\"\\)\n"), '']
  }
  $edited = $edits.reduce($shipped) |$text, $edit| {
    unless $text =~ $edit[0] {
      fail("kubemeta: ${shipped_name} has nothing matching ${edit[0]} to change; is the module from the same kubemeta release as the package?")
    }
    $text.regsubst($edit[0], $edit[1], 'G')
  }
  $skipped = $skip_modules.empty ? {
    true    => '',
    default => ", without loading ${skip_modules.join(', ')} (the site does)",
  }
  $dropin_text = @("HEADER")
    # Managed by Puppet (class kubemeta): kubemeta's ${shipped_name} for the
    # configuration ${config}${skipped}.
    | HEADER

  $from_parameters = {
    'kubernetes_url' => $kubernetes_url,
    'ca_file' => $ca_file,
    'token_file' => $token_file,
    'client_cert_file' => $client_cert_file,
    'client_key_file' => $client_key_file,
    'node_name' => $node_name,
    'extra_fields' => $extra_fields,
    'sink' => $snippet ? { 'omprog' => 'unix:/run/kubemeta-enriched.sock', default => undef },
  }.filter |$key, $value| { $value =~ NotUndef }

  # What this class writes besides the configuration: [path, content, secret].
  $written = [
    [$ca_file, $ca_cert, false],
    [$client_cert_file, $client_cert, false],
    [$token_file, $token, true],
    [$client_key_file, $client_key, true],
  ].filter |$w| { $w[1] =~ NotUndef }

  if $ensure == 'present' {
    if $manage_package {
      package { $package_name:
        ensure => $package_ensure,
        source => $package_source,
        before => [File[$config], File[$dropin]],
      }
    }
    file { $config_dir:
      ensure => directory,
      owner  => 'root',
      group  => $group,
      mode   => '0750',
    }
    $written.each |$w| {
      file { $w[0]:
        ensure    => file,
        # Secrets: readable by the helper's user only, never shown in a diff,
        # never copied to the filebucket. kubemeta re-reads a token file when
        # it changes, so only certificates and keys need rsyslog to restart.
        owner     => $w[2] ? { true => $user, default => 'root' },
        group     => $group,
        mode      => $w[2] ? { true => '0600', default => '0644' },
        content   => $w[1],
        show_diff => !$w[2],
        backup    => $w[2] ? { true => false, default => undef },
        before    => File[$config],
        notify    => $w[0] == $token_file ? { true => [], default => $reload },
      }
    }
    file { $config:
      ensure       => file,
      owner        => 'root',
      group        => $group,
      mode         => '0640',
      content      => epp('kubemeta/kubemeta.yaml.epp', { 'settings' => $from_parameters + $settings }),
      validate_cmd => "${binary} check --config-only --config %",
      notify       => $reload,
    }
    file { $dropin:
      ensure  => file,
      owner   => 'root',
      group   => 'root',
      mode    => '0644',
      content => "${dropin_text}\n${edited}",
      require => File[$config],
      notify  => $reload,
    }
    if $manage_daemon {
      # Before rsyslog loads a table snippet, the daemon has written the table.
      service { $daemon_service:
        ensure    => $table ? { true => 'running', default => 'stopped' },
        enable    => $table,
        subscribe => $table ? { true => [File[$config]], default => [] },
        before    => File[$dropin],
      }
    }
  } else {
    if $manage_daemon {
      service { $daemon_service:
        ensure => 'stopped',
        enable => false,
        before => $manage_package ? { true => [Package[$package_name]], default => [] },
      }
    }
    file { $dropin:
      ensure => absent,
      notify => $reload,
    }
    $written.each |$w| {
      file { $w[0]:
        ensure => absent,
        backup => false,
      }
    }
    file { $config_dir:
      ensure  => absent,
      force   => true,
      recurse => true,
      backup  => false,
    }
    if $manage_package {
      # The drop-in goes first: rsyslog must never load a config that names a
      # helper no longer installed.
      package { $package_name:
        ensure  => purged,
        require => File[$dropin],
      }
    }
  }

  if $mmkubernetes == 'absent' {
    $old = $mmkubernetes_dropins.map |$name| {
      $name ? {
        /\A\// => $name,
        default => "${rsyslog_dir}/${name}",
      }
    }
    file { $old:
      ensure => absent,
      notify => $reload,
    }
    package { $mmkubernetes_package:
      ensure  => absent,
      require => File[$old],
    }
  }
}
