# A node moving from mmkubernetes to kubemeta in one run: kubemeta is
# installed and configured, its drop-in takes the old one's place, the old
# drop-in and the mmkubernetes module are removed, and rsyslog restarts once.
#
# The site's rsyslog class normally declares the service; it is declared here
# so that this example compiles on its own (puppet apply --noop).
service { 'rsyslog':
  ensure => running,
  enable => true,
}

class { 'kubemeta':
  kubernetes_url       => 'https://api.k8s.example.net:6443',
  # A file the node already has (kubeadm's); give ca_cert to have it written.
  ca_file              => '/etc/kubernetes/pki/ca.crt',
  token_file           => '/etc/kubemeta/token',
  # From Hiera in real life (lookup('kubemeta::token')); Sensitive keeps the
  # token out of reports, diffs and the filebucket.
  token                => Sensitive('replace-with-the-service-account-token'),
  extra_fields         => ['owner'],
  workers              => 2,
  settings             => { 'annotation_match' => ['^prometheus\.io/'] },
  mmkubernetes         => 'absent',
  mmkubernetes_dropins => ['49-mmkubernetes.conf', 'k8s_filename.rulebase',
                           'k8s_container_name.rulebase'],
}
